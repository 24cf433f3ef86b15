"""The Arithmetic panel."""
from explorer.panels.arithmetic.panel import ArithmeticPanel

__all__ = ["ArithmeticPanel"]
