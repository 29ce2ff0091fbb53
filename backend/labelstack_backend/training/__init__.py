"""Fine-tuning from Label Studio annotations: dataset building, the training job, its state."""
