"""Real social-media data: one adapter per upstream source, and the SoMeData builder."""

from somelvlm.data.example import Example
from somelvlm.data.report import DataReport, Problem

__all__ = ["DataReport", "Example", "Problem"]
