"""The local stack: Label Studio, the backends and Redis as supervised local processes."""
