"""Agent tests: each Faust agent driven through ``test_context()``, with no broker."""
