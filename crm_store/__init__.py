"""The CRM store: models, migrations, unit of work and service functions."""
