"""Bulk pre-labeling: every task of a project that lacks a prediction of the serving version
is predicted in the background, in the model's own batches, and written back to Label Studio
in bulk (see docs/architecture.md#bulk-pre-labeling)."""
