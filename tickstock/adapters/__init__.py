"""Thin adapters to the outside world (Redis, PostgreSQL, HTTP). Nothing in the domain imports them."""
