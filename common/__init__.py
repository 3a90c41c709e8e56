"""Code every service shares: settings, the bus contract, Redis, health, logging, lifecycle."""
