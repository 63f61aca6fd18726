package bench_test

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPlotRendersInChromium draws the plot in a real browser and counts the
// pixels of the bars' colour in the screenshot: the SVG is not only XML but
// an image with its bars in it. It runs where the browser tests do (.ci/run
// sets STS_TEST_CHROMIUM).
func TestPlotRendersInChromium(t *testing.T) {
	bin := os.Getenv("STS_TEST_CHROMIUM")
	if bin == "" {
		t.Skip("set STS_TEST_CHROMIUM to the path of a Chromium binary to render the plot")
	}
	dir := t.TempDir()
	svg, shot := filepath.Join(dir, "latency.svg"), filepath.Join(dir, "latency.png")
	f, err := os.Create(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := sample().WriteSVG(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--force-color-profile=srgb",
		"--screenshot="+shot, "--window-size=900,560", "file://"+svg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	pf, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatal(err)
	}
	// The bars are #4a7fb5; the sample's tallest covers about 35×400 pixels.
	near := func(a uint32, b uint8) bool { v := int(a>>8) - int(b); return v >= -8 && v <= 8 }
	bar := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, 0x4a) && near(g, 0x7f) && near(b, 0xb5) {
				bar++
			}
		}
	}
	if bar < 5000 {
		t.Errorf("%d pixels of the bars' colour in the rendered plot, want thousands (%s)", bar, shot)
	}
}
