"""Errors a command reports as `labctl: <message>`; the class sets the exit code."""


class LabError(Exception):
    code = 1


class UsageError(LabError):
    code = 2
