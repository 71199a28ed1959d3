"""File integrity detector: compare a scan with the baseline and classify the differences."""
