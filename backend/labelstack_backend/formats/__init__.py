"""Conversions between Label Studio annotations and training/export formats.

One converter: fine-tuning and ``labelstack export`` both go through
:mod:`labelstack_backend.formats.annotations`.
"""
