package hubsim

import "net/http"

func (h *Hub) restRoutes(mux *http.ServeMux) {}
