"""Administration of pipelines and their stages."""
