"""What operators run from the ``eatcloud`` command: saga inspection, the DLQ, stock, the demo.

Each module is plain async code over the settings and the clients of ``bootstrap.build``
(``Services``); ``eatcloud/cli.py`` builds them, runs the command and prints its results.
"""
