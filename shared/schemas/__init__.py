"""Marshmallow schemas for every payload on the wire, shared by api, agent, CLI and tests."""
