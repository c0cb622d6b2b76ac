"""Example model specifications, written in bayestwin's spec language and fitted in the tests."""
