"""Training loop and losses, shared by ``effprof train`` and compression's recovery step."""
