"""Training side of ha2g_ros: data ingestion, windows, training, evaluation, the default checkpoint.

See docs/training.md. Nothing in ha2g_model or ha2g_ros imports this package.
"""
