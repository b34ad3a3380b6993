"""Calendar feeds (ICS subscriptions) and .ics invitation import."""
