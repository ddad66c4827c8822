"""Readers of the shop's input: the event log as ``input`` describes it (``events``), the
files behind it and their checks (``files``), event times (``timestamps``) and
RetailRocket's catalogue files (``catalogue``)."""

from recsys_lib.io.events import RawInput, load_events
from recsys_lib.io.files import InputError

__all__ = ["InputError", "RawInput", "load_events"]
