package host

import (
	"context"
	"strings"
	"testing"
)

func TestUsers(t *testing.T) {
	ctx := context.Background()
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			rp := newReplay(t, v, "users.create.ok")
			c := rp.adminClient()
			fx := loadFixture(t, v, "users.create.ok")
			var in struct {
				Email, Password, Username, Notes string
				Concurrency                      int
			}
			requestBody(t, fx, &in)
			u, err := c.CreateUser(ctx, CreateUserRequest{Email: in.Email, Password: in.Password, Username: in.Username, Notes: in.Notes, Concurrency: in.Concurrency})
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, fx, rp.last())
			if u.ID == 0 || u.Email != in.Email || u.Role != "user" || u.Status != "active" || u.Balance != 0 {
				t.Errorf("user %+v", u)
			}

			dup := loadFixture(t, v, "users.create.duplicate-email")
			rp.add(dup)
			_, err = c.CreateUser(ctx, CreateUserRequest{Email: in.Email, Password: in.Password})
			mustHostError(t, err, 409, CodeEmailExists)

			inv := loadFixture(t, v, "users.create.invalid")
			rp.add(inv)
			_, err = c.CreateUser(ctx, CreateUserRequest{Email: "not-an-email", Password: "123"})
			he := mustHostError(t, err, 400, "")
			if !strings.Contains(he.Message, "Invalid request") {
				t.Errorf("bind message %q", he.Message)
			}

			get := loadFixture(t, v, "users.get.ok")
			rp.add(get)
			g, err := c.GetUser(ctx, pathID(t, get))
			if err != nil || g.ID != pathID(t, get) {
				t.Fatalf("get user %+v %v", g, err)
			}
			gnf := loadFixture(t, v, "users.get.not-found")
			rp.add(gnf)
			_, err = c.GetUser(ctx, pathID(t, gnf))
			mustHostError(t, err, 404, "USER_NOT_FOUND")

			list := loadFixture(t, v, "users.list.ok")
			rp.add(list)
			f, err := c.FindUserByEmail(ctx, strings.ToUpper(in.Email))
			if err != nil || f == nil || f.ID != u.ID {
				t.Fatalf("find user %+v %v", f, err)
			}
			if q := rp.last().Query; !strings.Contains(q, "search=") {
				t.Errorf("query %q", q)
			}
			f, err = c.FindUserByEmail(ctx, "nobody@example.com")
			if err != nil || f != nil {
				t.Fatalf("find nobody: %+v %v", f, err)
			}

			bal := loadFixture(t, v, "users.balance.add.ok")
			rp.add(bal)
			rp.add(loadFixture(t, v, "users.balance.add.replay"))
			idem := bal.Request.Headers["Idempotency-Key"]
			b, err := c.AddBalance(ctx, pathID(t, bal), 10, "fixture topup", idem)
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, bal, rp.last())
			if b.Balance != 10 {
				t.Errorf("balance %v", b.Balance)
			}
			b, err = c.AddBalance(ctx, pathID(t, bal), 10, "fixture topup", idem)
			if err != nil || b.Balance != 10 {
				t.Fatalf("replayed balance %+v %v", b, err)
			}
			zero := loadFixture(t, v, "users.balance.zero")
			rp.add(zero)
			_, err = c.AddBalance(ctx, pathID(t, zero), 0, "", "")
			mustHostError(t, err, 400, "")

			del := loadFixture(t, v, "users.delete.ok")
			rp.add(del)
			if err := c.DeleteUser(ctx, pathID(t, del)); err != nil {
				t.Fatal(err)
			}
			dnf := loadFixture(t, v, "users.delete.not-found")
			rp.add(dnf)
			err = c.DeleteUser(ctx, pathID(t, dnf))
			mustHostError(t, err, 404, "USER_NOT_FOUND")
		})
	}
}
