"""Fault injection from outside the service: a TCP proxy that can cut or blackhole its connections."""
