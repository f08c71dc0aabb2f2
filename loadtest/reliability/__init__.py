"""The fault suite: a stack of its own, faults under mixed traffic, a history checker, and reliability.md."""
