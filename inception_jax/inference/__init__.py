"""Using a trained or converted checkpoint: restoring it, full-split evaluation, prediction."""
