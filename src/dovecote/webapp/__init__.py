"""The web page: the built React client (web/ -> static/), served from the package."""
