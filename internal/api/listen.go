package api

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Bounds of a lingering close: how long, and how much, a closing connection keeps reading
// what the client is still sending.
const (
	lingerTimeout = 5 * time.Second
	lingerBytes   = 2 * MaxBodyBytes
)

// Serve listens on addr and serves app with LingerListener.
func Serve(app *fiber.App, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return app.Listener(LingerListener(ln))
}

// LingerListener wraps ln so that closing a TCP connection first stops writing and then
// drains, for a bounded time and amount, what the client is still sending (a "lingering
// close"). The server refuses a request whose body is over MaxBodyBytes as soon as it reads
// Content-Length, answers 413 and closes; closing a socket with unread input makes the
// kernel reset the connection, and the reset destroys the 413 the client had not read yet
// (a 40 MiB upload saw "connection reset by peer" instead of the JSON error). Draining
// first lets the client finish sending and read the answer.
func LingerListener(ln net.Listener) net.Listener { return lingerListener{ln} }

type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

// Close sends FIN at once (the answer is already written) and closes the socket after the
// client stopped sending, the drain bound was read, or lingerTimeout passed.
func (c *lingerConn) Close() error {
	c.once.Do(func() {
		if err := c.TCPConn.CloseWrite(); err != nil {
			_ = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.TCPConn, lingerBytes)
			_ = c.TCPConn.Close()
		}()
	})
	return nil
}
