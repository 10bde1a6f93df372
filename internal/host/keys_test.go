package host

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
)

func TestKeys(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			var rec evidence.Recorder
			ctx := evidence.WithRecorder(context.Background(), &rec)
			rp := newReplay(t, v, "keys.create.ok")
			c := rp.adminClient()
			fx := loadFixture(t, v, "keys.create.ok")
			var in struct {
				Name    string
				GroupID int64 `json:"group_id"`
			}
			requestBody(t, fx, &in)
			idem := fx.Request.Headers["Idempotency-Key"]
			k, err := c.CreateKey(ctx, testUserToken, CreateKeyRequest{Name: in.Name, GroupID: in.GroupID}, idem)
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, fx, rp.last())
			if got := rp.last().Header.Get("Authorization"); got != "Bearer "+testUserToken {
				t.Errorf("Authorization %q", got)
			}
			if rp.last().Header.Get("x-api-key") != "" {
				t.Error("admin key sent on a user route")
			}
			if k.ID == 0 || k.UserID == 0 || k.GroupID != in.GroupID || k.Status != "active" || !strings.HasPrefix(k.Key, "sk-") {
				t.Errorf("key %+v", k)
			}
			// The full key value is a secret: not in the recorded preview.
			ex := rec.Exchanges()
			if p := ex[len(ex)-1].Preview; strings.Contains(p, k.Key[:20]) || strings.Contains(p, k.Key[len(k.Key)-12:]) || !strings.Contains(p, "****") {
				t.Errorf("key value in preview: %s", p)
			}

			custom := loadFixture(t, v, "keys.create.custom-key.ok")
			rp.add(custom)
			var cin struct {
				Name      string
				GroupID   int64  `json:"group_id"`
				CustomKey string `json:"custom_key"`
			}
			requestBody(t, custom, &cin)
			k, err = c.CreateKey(ctx, testUserToken, CreateKeyRequest{Name: cin.Name, GroupID: cin.GroupID, CustomKey: cin.CustomKey}, "")
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, custom, rp.last())
			if k.Key != cin.CustomKey {
				t.Errorf("custom key %q", k.Key)
			}
			ex = rec.Exchanges()
			if p := ex[len(ex)-1].Preview; strings.Contains(p, cin.CustomKey) {
				t.Errorf("custom key in preview: %s", p)
			}

			for _, tc := range []struct {
				fixture string
				status  int
				code    string
			}{
				{"keys.create.custom-key-too-short", 400, "API_KEY_TOO_SHORT"},
				{"keys.create.duplicate-custom-key", 409, CodeAPIKeyExists},
				{"keys.create.group-not-allowed", 403, "GROUP_NOT_ALLOWED"},
				{"keys.create.group-not-found", 404, "GROUP_NOT_FOUND"},
				{"keys.create.admin-key-rejected", 401, "UNAUTHORIZED"},
			} {
				rp.add(loadFixture(t, v, tc.fixture))
				_, err := c.CreateKey(ctx, testUserToken, CreateKeyRequest{Name: "x", GroupID: 1, CustomKey: "fixture-custom-key-0000000001"}, "")
				mustHostError(t, err, tc.status, tc.code)
			}

			list := loadFixture(t, v, "keys.list.user.ok")
			rp.add(list)
			ks, err := c.ListKeys(ctx, testUserToken)
			if err != nil {
				t.Fatal(err)
			}
			if len(ks) != 2 || ks[0].Key == "" {
				t.Errorf("user keys %+v", ks)
			}
			admin := loadFixture(t, v, "keys.list.admin.ok")
			rp.add(admin)
			ks, err = c.ListUserKeys(ctx, pathID(t, admin))
			if err != nil || len(ks) == 0 || ks[0].UserID != pathID(t, admin) {
				t.Fatalf("admin keys %+v %v", ks, err)
			}
			if rp.last().Header.Get("x-api-key") != testAdminKey {
				t.Error("admin key list without admin auth")
			}
			for _, e := range rec.Exchanges() {
				if strings.Contains(e.Preview, ks[0].Key) {
					t.Errorf("listed key in preview %s", e.Preview)
				}
			}

			del := loadFixture(t, v, "keys.delete.ok")
			rp.add(del)
			if err := c.DeleteKey(ctx, testUserToken, pathID(t, del)); err != nil {
				t.Fatal(err)
			}
			dnf := loadFixture(t, v, "keys.delete.not-found")
			rp.add(dnf)
			err = c.DeleteKey(ctx, testUserToken, pathID(t, dnf))
			mustHostError(t, err, 404, "API_KEY_NOT_FOUND")
			if strings.Contains(err.Error(), testUserToken[:20]) {
				t.Error("user token in error")
			}
		})
	}
}

func TestKeyIdempotentReplay(t *testing.T) {
	for _, v := range versions {
		rp := newReplay(t, v, "keys.create.idempotency.first", "keys.create.idempotent-replay")
		first := loadFixture(t, v, "keys.create.idempotency.first")
		var in struct {
			Name      string
			GroupID   int64  `json:"group_id"`
			CustomKey string `json:"custom_key"`
		}
		requestBody(t, first, &in)
		idem := first.Request.Headers["Idempotency-Key"]
		c := rp.adminClient()
		req := CreateKeyRequest{Name: in.Name, GroupID: in.GroupID, CustomKey: in.CustomKey}
		k1, err1 := c.CreateKey(context.Background(), testUserToken, req, idem)
		k2, err2 := c.CreateKey(context.Background(), testUserToken, req, idem)
		if err1 != nil || err2 != nil || k1.ID != k2.ID {
			t.Fatalf("%s: replay %v %v %+v %+v", v, err1, err2, k1, k2)
		}
		for _, s := range rp.all() {
			if s.Header.Get("Idempotency-Key") != idem {
				t.Errorf("%s: Idempotency-Key %q", v, s.Header.Get("Idempotency-Key"))
			}
		}
	}
}

func TestSubscriptions(t *testing.T) {
	ctx := context.Background()
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			rp := newReplay(t, v, "subscriptions.assign.ok", "subscriptions.assign.repeat-identical", "subscriptions.assign.conflict",
				"subscriptions.assign.not-subscription-group", "subscriptions.assign.group-not-found")
			c := rp.adminClient()
			fx := loadFixture(t, v, "subscriptions.assign.ok")
			var in struct {
				UserID       int64 `json:"user_id"`
				GroupID      int64 `json:"group_id"`
				ValidityDays int   `json:"validity_days"`
				Notes        string
			}
			requestBody(t, fx, &in)
			req := AssignSubscriptionRequest{UserID: in.UserID, GroupID: in.GroupID, ValidityDays: in.ValidityDays, Notes: in.Notes}
			s, err := c.AssignSubscription(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, fx, rp.last())
			if s.ID == 0 || s.UserID != in.UserID || s.GroupID != in.GroupID || s.Status != "active" {
				t.Errorf("subscription %+v", s)
			}
			if d := time.Until(s.ExpiresAt); s.ExpiresAt.IsZero() || d < -365*24*time.Hour*5 {
				t.Errorf("expires_at %v", s.ExpiresAt)
			}
			s2, err := c.AssignSubscription(ctx, req)
			if err != nil || s2.ID != s.ID {
				t.Fatalf("identical repeat %+v %v", s2, err)
			}
			req.ValidityDays = 60
			_, err = c.AssignSubscription(ctx, req)
			he := mustHostError(t, err, 409, CodeSubscriptionClash)
			if he.Metadata["conflict_reason"] != "validity_days_mismatch" {
				t.Errorf("metadata %+v", he.Metadata)
			}
			_, err = c.AssignSubscription(ctx, req)
			mustHostError(t, err, 400, "GROUP_NOT_SUBSCRIPTION_TYPE")
			_, err = c.AssignSubscription(ctx, req)
			mustHostError(t, err, 404, "GROUP_NOT_FOUND")

			byUser := loadFixture(t, v, "subscriptions.list-by-user.ok")
			rp.add(byUser)
			ss, err := c.ListUserSubscriptions(ctx, pathID(t, byUser))
			if err != nil || len(ss) == 0 || ss[0].UserID != pathID(t, byUser) || ss[0].ExpiresAt.IsZero() {
				t.Fatalf("by user %+v %v", ss, err)
			}

			rev := loadFixture(t, v, "subscriptions.revoke.ok")
			rp.add(rev)
			if err := c.RevokeSubscription(ctx, pathID(t, rev)); err != nil {
				t.Fatal(err)
			}
			rnf := loadFixture(t, v, "subscriptions.revoke.not-found")
			rp.add(rnf)
			err = c.RevokeSubscription(ctx, pathID(t, rnf))
			mustHostError(t, err, 404, "SUBSCRIPTION_NOT_FOUND")
		})
	}
}
