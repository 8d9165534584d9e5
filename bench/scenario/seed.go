package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Seed is what the simulated app holds when the bench starts, as the bench
// reads it from the app itself: the requests are built from it.
type Seed struct {
	// Users are the seeded user ids, user_1..user_N, hottest first.
	Users []string
	// Categories and Brands are the catalogue's, sorted.
	Categories []string
	Brands     []string
	// Products are the catalogue's rows, in the products route's order.
	Products []Product
	// Orders are the seeded orders: what a return may name.
	Orders []Order
}

// Product is one catalogue row as the bench uses it.
type Product struct {
	ID    string
	Price string // as the app writes NUMERIC: "39.95"
}

// Order is one seeded order and a product in it.
type Order struct {
	ID, UserID, ProductID string
}

func (s *Seed) check() error {
	switch {
	case s == nil:
		return errors.New("scenario: no seed")
	case len(s.Users) == 0, len(s.Categories) == 0, len(s.Brands) == 0, len(s.Products) == 0:
		return errors.New("scenario: the seed needs users, categories, brands and products")
	}
	return nil
}

// Discover reads the seed from the simulated app at base
// ("http://127.0.0.1:PORT"), whose users are user_1..user_N: one products
// request for the whole catalogue, and one orders request per user.
func Discover(ctx context.Context, base string, users int) (*Seed, error) {
	if users < 1 {
		return nil, errors.New("discover: need at least one user")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var rows []struct {
		ID       string `json:"id"`
		Price    string `json:"price"`
		Category string `json:"category"`
		Brand    string `json:"brand"`
	}
	if err := getData(ctx, client, base+"/api/vultr/postgres/products?limit=100000", &rows); err != nil {
		return nil, fmt.Errorf("discover products: %w", err)
	}
	s := &Seed{}
	for _, r := range rows {
		s.Products = append(s.Products, Product{ID: r.ID, Price: r.Price})
		s.Categories = append(s.Categories, r.Category)
		s.Brands = append(s.Brands, r.Brand)
	}
	slices.Sort(s.Categories)
	slices.Sort(s.Brands)
	s.Categories, s.Brands = slices.Compact(s.Categories), slices.Compact(s.Brands)
	for i := 1; i <= users; i++ {
		user := "user_" + strconv.Itoa(i)
		s.Users = append(s.Users, user)
		var orders []struct {
			ID    string `json:"order_id"`
			Items []struct {
				ProductID string `json:"product_id"`
			} `json:"items"`
		}
		if err := getData(ctx, client, base+"/api/vultr/postgres/users/"+user+"/orders", &orders); err != nil {
			return nil, fmt.Errorf("discover orders of %s: %w", user, err)
		}
		for _, o := range orders {
			if len(o.Items) > 0 {
				s.Orders = append(s.Orders, Order{ID: o.ID, UserID: user, ProductID: o.Items[0].ProductID})
			}
		}
	}
	return s, s.check()
}

// getData GETs url and decodes the "data" member of the app's envelope.
func getData(ctx context.Context, client *http.Client, url string, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return json.Unmarshal(body, &struct {
		Data any `json:"data"`
	}{data})
}
