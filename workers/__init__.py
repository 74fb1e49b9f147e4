"""rq jobs, their schedule, and the per-process runtime they share with the web app."""
