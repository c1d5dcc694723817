"""The course's grader: runs a chapter's hidden checks against a learner's exercise."""

__version__ = "0.1.0"
