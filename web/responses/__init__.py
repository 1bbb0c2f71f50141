"""Responses from departments: the response page, replies by email, meetings, the
department inbox and public accountability."""
