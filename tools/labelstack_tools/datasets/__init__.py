"""Data in and out of Label Studio: bulk import from a bucket or folder, versioned export."""
