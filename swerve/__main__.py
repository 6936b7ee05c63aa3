from swerve.cli import app

app()
