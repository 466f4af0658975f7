"""What operators run from the ``eatcloud`` command: saga inspection, the DLQ, stock, the demo.

Each module is plain async code over the settings; ``eatcloud/cli.py`` prints its results.
"""
