"""The saga's runtime on Faust: batch envelopes (``wire``), the adapter that runs typed
handlers over them (``adapter``), direct table access (``tables``) and every Faust/mode
workaround (``faust_patches``), in one place. See docs/saga.md for the topology."""
