"""Health: pure rules that turn measurements into healthy / warning / critical with reasons."""

from tickstock.health.rules import HealthInputs, evaluate

__all__ = ["HealthInputs", "evaluate"]
