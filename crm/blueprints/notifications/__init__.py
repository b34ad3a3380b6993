"""The bell: in-app notifications raised by reminders and assignments."""
