"""(placeholder: being written)"""

routes: list = []
