"""The Pixel-by-pixel panel: watch a PixelCNN draw in raster order, scrub it, complete images."""
