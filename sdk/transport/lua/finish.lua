-- Finish a started job (see finish_function.lua).
return finish()
