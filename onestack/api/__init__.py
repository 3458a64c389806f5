"""One ASGI app; one thin module per service: parse -> authorize -> call -> render."""
