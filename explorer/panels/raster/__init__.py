"""The Pixels panel: watch a PixelCNN draw in raster order, scrub it, complete images."""
