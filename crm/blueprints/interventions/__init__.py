"""Field work: planning interventions, the dispatch board and the technician's day."""
