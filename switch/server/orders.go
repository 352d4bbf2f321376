package server

// NotifyPath is where QR networks post merchant-presented payment notifications, on
// the admin server.
const NotifyPath = "/qr/v1/notify"

// startOrders wires merchant-presented orders: the notification route, and where the
// demo wallet sends its notifications.
func (s *Server) startOrders() {
	if s.demoWallet != nil {
		s.demoWallet.SetNotifyURL("http://" + s.adminLn.Addr().String() + NotifyPath)
	}
}
