"""A GitHub REST API fake for the App's tests (see :mod:`.server`)."""

from .openapi import RestDescription
from .server import FakeGitHub, Hold

__all__ = ["FakeGitHub", "Hold", "RestDescription"]
