"""The actor tree: SessionActor supervising ingress, symbols, persistence and publisher.

Run the service with ``python -m tickstock.actors``.
"""
