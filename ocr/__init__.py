"""ocr package."""
