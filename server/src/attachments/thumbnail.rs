//! Image thumbnails: decode within bounds (no decompression bombs), shrink to fit 320 × 320,
//! encode as JPEG.

use std::io::Cursor;

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// The largest image decoded, per side.
const MAX_SIDE: u32 = 12_000;
/// The most memory one decode may take.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// An image's size and its thumbnail.
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    pub jpeg: Vec<u8>,
}

/// Decodes `bytes` (PNG, JPEG, GIF's first frame, WebP) and makes its thumbnail.
pub fn make(bytes: &[u8]) -> Result<Thumbnail, String> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    let (width, height) = (img.width(), img.height());
    // Found by fuzzing (attachment_upload): a GIF whose screen is 4417 × 0 decodes to an image
    // with no pixels, which would be stored as a 0-high picture with an empty thumbnail.
    if width == 0 || height == 0 {
        return Err(format!("the image is {width} × {height} pixels"));
    }
    let small = if width <= THUMBNAIL_SIDE && height <= THUMBNAIL_SIDE {
        img.to_rgb8()
    } else {
        img.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8()
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&small)
        .map_err(|e| e.to_string())?;
    Ok(Thumbnail {
        width,
        height,
        jpeg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn thumbnails_fit_the_box_and_keep_the_shape() {
        let t = make(&png(1000, 500)).expect("thumbnail");
        assert_eq!((t.width, t.height), (1000, 500));
        let small = image::load_from_memory(&t.jpeg).expect("a JPEG");
        assert_eq!((small.width(), small.height()), (320, 160));
        let t = make(&png(40, 30)).expect("thumbnail");
        let small = image::load_from_memory(&t.jpeg).expect("a JPEG");
        assert_eq!(
            (small.width(), small.height()),
            (40, 30),
            "small images stay small"
        );
    }

    #[test]
    fn an_image_with_no_pixels_is_refused() {
        let gif = hex::decode(
            "47494638396141110000800000006000ff54ff2c00002000010001000002024400800000ffffffce00600001003b",
        )
        .expect("hex");
        let err = make(&gif).err().expect("refused");
        assert!(err.contains("pixels"), "{err}");
    }

    #[test]
    fn broken_and_huge_images_are_refused() {
        let mut broken = png(64, 64);
        broken.truncate(40);
        assert!(make(&broken).is_err());
        // A PNG header claiming 100000 × 100000 pixels: refused before any allocation.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(make(&bomb).is_err());
    }
}
