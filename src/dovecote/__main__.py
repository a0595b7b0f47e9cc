from dovecote.cli import app

app()
