"""Kubernetes access: the port tools use, and the one client that implements it."""
