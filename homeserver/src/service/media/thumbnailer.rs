//! Making thumbnails: which size answers a request, and the image work itself. Sans-I/O: it
//! reads an image from any `BufRead + Seek` and returns the encoded thumbnail, so it is tested
//! on images made in memory. CPU-bound; callers run it off the async runtime.
//!
//! Only JPEG, PNG, GIF and WebP are read (the formats the spec names for thumbnails). Anything
//! else, SVG included, cannot be thumbnailed.
//!
//! A decompression bomb (a small file declaring a huge image) is refused from its header,
//! before a pixel is decoded, and the decoder itself runs under an allocation limit in case a
//! header lies.

use std::io::{BufRead, Cursor, Seek};

use image::{
    AnimationDecoder, DynamicImage, Frame, ImageDecoder, ImageFormat, ImageReader, Limits, metadata::Orientation,
    codecs::{gif::GifDecoder, gif::GifEncoder, gif::Repeat, jpeg::JpegDecoder, jpeg::JpegEncoder, png::PngDecoder,
        png::PngEncoder, webp::WebPDecoder},
};
use ruma::media::Method;

/// The sizes thumbnails are made in (Synapse's defaults, which the spec recommends). Requests
/// are mapped onto these, so a media item has at most this many thumbnails, however many
/// sizes clients ask for.
pub const SIZES: &[ThumbnailSize] = &[
    ThumbnailSize { width: 32, height: 32, method: ResizeMethod::Crop },
    ThumbnailSize { width: 96, height: 96, method: ResizeMethod::Crop },
    ThumbnailSize { width: 320, height: 240, method: ResizeMethod::Scale },
    ThumbnailSize { width: 640, height: 480, method: ResizeMethod::Scale },
    ThumbnailSize { width: 800, height: 600, method: ResizeMethod::Scale },
];

/// JPEG thumbnails' quality (Synapse uses 80 too).
const JPEG_QUALITY: u8 = 80;
/// The GIF encoder's colour quantisation speed (1 is slowest and best, 30 fastest).
const GIF_SPEED: i32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResizeMethod {
    /// Exactly the size: scaled to cover it, then the middle cut out.
    Crop,
    /// Within the size, keeping the aspect ratio.
    Scale,
}

impl ResizeMethod {
    /// The request's `method`; absent means scale (as Synapse). `None` for a method the spec
    /// does not define.
    pub fn from_request(method: Option<&Method>) -> Option<Self> {
        match method {
            None | Some(Method::Scale) => Some(Self::Scale),
            Some(Method::Crop) => Some(Self::Crop),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crop => "crop",
            Self::Scale => "scale",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThumbnailSize {
    pub width: u32,
    pub height: u32,
    pub method: ResizeMethod,
}

impl ThumbnailSize {
    fn covers(&self, width: u64, height: u64) -> bool {
        u64::from(self.width) >= width && u64::from(self.height) >= height
    }

    fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The size that answers a request for `width` x `height` with `method`: the smallest size of
/// that method at least as big as requested (the spec: never smaller than asked when the
/// original allows it); failing that, the smallest size of the other method that is (a crop of
/// 100x100 is then answered with a 320x240 scale, which the client can crop itself); failing
/// that, the largest size there is.
pub fn choose_size(width: u64, height: u64, method: ResizeMethod) -> ThumbnailSize {
    let smallest_covering = |same_method: bool| {
        SIZES
            .iter()
            .filter(|size| (size.method == method) == same_method && size.covers(width, height))
            .min_by_key(|size| size.area())
    };
    smallest_covering(true)
        .or_else(|| smallest_covering(false))
        .or_else(|| SIZES.iter().max_by_key(|size| size.area()))
        .copied()
        .unwrap_or(ThumbnailSize { width: 800, height: 600, method: ResizeMethod::Scale })
}

/// What answers a thumbnail request.
#[derive(Debug)]
pub enum Thumbnail {
    /// The original fits within the size and is of a thumbnail type: serve it as it is rather
    /// than a copy that is no smaller (Synapse does the same).
    Original,
    /// A new image.
    Generated { bytes: Vec<u8>, content_type: &'static str, width: u32, height: u32 },
}

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// Not an image in a format we read (SVG, PDF, video, text, a corrupt file).
    #[error("cannot thumbnail this content: {0}")]
    Unsupported(String),
    /// The header declares more pixels than `max_pixels`.
    #[error("the image is {width}x{height} pixels, more than the {max_pixels} that are thumbnailed")]
    TooLarge { width: u32, height: u32, max_pixels: u64 },
}

impl From<image::ImageError> for ThumbnailError {
    fn from(error: image::ImageError) -> Self {
        match error {
            image::ImageError::Limits(_) => Self::Unsupported(format!("the decoder's memory limit was reached: {error}")),
            error => Self::Unsupported(error.to_string()),
        }
    }
}

/// Makes the thumbnail of the image in `source` for `size`. With `animated`, an animated GIF,
/// WebP or APNG gives an animated GIF (the image crate cannot encode animated WebP); without
/// it the first frame is used, as the spec requires. A still image in JPEG stays JPEG, every
/// other still image becomes PNG (it may have transparency).
pub fn make_thumbnail<R: BufRead + Seek>(
    source: R,
    size: ThumbnailSize,
    animated: bool,
    max_pixels: u64,
) -> Result<Thumbnail, ThumbnailError> {
    let reader = ImageReader::new(source).with_guessed_format().map_err(|e| ThumbnailError::Unsupported(e.to_string()))?;
    let format = reader.format();
    let source = reader.into_inner();
    match format {
        Some(ImageFormat::Jpeg) => {
            let mut decoder = JpegDecoder::new(source)?;
            let (width, height) = decoder.dimensions();
            check_pixels((width, height), max_pixels)?;
            // Photos are often stored sideways with an EXIF orientation; sizes are of the
            // image as shown.
            let orientation = decoder.orientation()?;
            let (shown_width, shown_height) = match orientation {
                Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH => (height, width),
                _ => (width, height),
            };
            if size.covers(u64::from(shown_width), u64::from(shown_height)) {
                return Ok(Thumbnail::Original);
            }
            decoder.set_limits(decoder_limits(max_pixels))?;
            let mut image = DynamicImage::from_decoder(decoder)?;
            image.apply_orientation(orientation);
            encode_still(&resize(&image, size), ImageFormat::Jpeg)
        }
        Some(ImageFormat::Png) => {
            let decoder = PngDecoder::new(source)?;
            let is_animated = decoder.is_apng()?;
            thumbnail_of_animatable(decoder, is_animated, PngDecoder::apng, size, animated, max_pixels)
        }
        // Whether a GIF has a second frame is only known by decoding the first, so a GIF counts
        // as animated: it is served as it is only when an animation is welcome.
        Some(ImageFormat::Gif) => thumbnail_of_animatable(GifDecoder::new(source)?, true, Ok, size, animated, max_pixels),
        Some(ImageFormat::WebP) => {
            let decoder = WebPDecoder::new(source)?;
            let is_animated = decoder.has_animation();
            thumbnail_of_animatable(decoder, is_animated, Ok, size, animated, max_pixels)
        }
        Some(other) => Err(ThumbnailError::Unsupported(format!("{other:?} images are not thumbnailed"))),
        None => Err(ThumbnailError::Unsupported("not an image in a known format".to_owned())),
    }
}

/// The thumbnail of an image that may be animated: the original when it fits and its
/// animation (if any) is welcome, an animated GIF when asked for and possible, a still
/// thumbnail of the first frame otherwise.
fn thumbnail_of_animatable<'a, D: ImageDecoder, A: AnimationDecoder<'a>>(
    mut decoder: D,
    is_animated: bool,
    animation_of: impl FnOnce(D) -> image::ImageResult<A>,
    size: ThumbnailSize,
    animated: bool,
    max_pixels: u64,
) -> Result<Thumbnail, ThumbnailError> {
    let dimensions = decoder.dimensions();
    check_pixels(dimensions, max_pixels)?;
    if size.covers(u64::from(dimensions.0), u64::from(dimensions.1)) && (animated || !is_animated) {
        return Ok(Thumbnail::Original);
    }
    if animated && is_animated {
        return animate(animation_of(decoder)?, dimensions, size, max_pixels);
    }
    decoder.set_limits(decoder_limits(max_pixels))?;
    still_thumbnail(decoder, size)
}

/// The decoder's own allocation cap: 8 bytes (16-bit RGBA) per allowed pixel, so that a header
/// that understates the image still cannot make it allocate without bound.
fn decoder_limits(max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    limits
}

fn check_pixels((width, height): (u32, u32), max_pixels: u64) -> Result<(), ThumbnailError> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ThumbnailError::TooLarge { width, height, max_pixels });
    }
    Ok(())
}

/// A still thumbnail of the first frame, as PNG (GIF, WebP and PNG sources may be transparent).
fn still_thumbnail(decoder: impl ImageDecoder, size: ThumbnailSize) -> Result<Thumbnail, ThumbnailError> {
    let image = DynamicImage::from_decoder(decoder)?;
    encode_still(&resize(&image, size), ImageFormat::Png)
}

/// Resizes every frame of an animation and encodes them as an animated GIF. The frames decoded
/// may hold at most `max_pixels` pixels in all; a longer animation gives a still thumbnail of
/// its first frame instead (the spec lets a server answer a still image when it cannot animate).
fn animate<'a>(
    decoder: impl AnimationDecoder<'a>,
    (width, height): (u32, u32),
    size: ThumbnailSize,
    max_pixels: u64,
) -> Result<Thumbnail, ThumbnailError> {
    let frame_pixels = (u64::from(width) * u64::from(height)).max(1);
    let max_frames = max_pixels / frame_pixels;
    let mut resized = Vec::new();
    let mut first = None;
    for (index, frame) in decoder.into_frames().enumerate() {
        let frame = frame?;
        if index as u64 >= max_frames {
            let first = first.ok_or_else(|| ThumbnailError::Unsupported("an animation without frames".to_owned()))?;
            return encode_still(&first, ImageFormat::Png);
        }
        let delay = frame.delay();
        let image = resize(&DynamicImage::ImageRgba8(frame.into_buffer()), size);
        if first.is_none() {
            first = Some(image.clone());
        }
        resized.push(Frame::from_parts(image.into_rgba8(), 0, 0, delay));
    }
    let Some(first) = first else { return Err(ThumbnailError::Unsupported("an animation without frames".to_owned())) };
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut bytes, GIF_SPEED);
        encoder.set_repeat(Repeat::Infinite)?;
        encoder.encode_frames(resized)?;
    }
    Ok(Thumbnail::Generated { bytes, content_type: "image/gif", width: first.width(), height: first.height() })
}

fn encode_still(image: &DynamicImage, format: ImageFormat) -> Result<Thumbnail, ThumbnailError> {
    let mut bytes = Cursor::new(Vec::new());
    let content_type = match format {
        ImageFormat::Jpeg => {
            DynamicImage::ImageRgb8(image.to_rgb8()).write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY))?;
            "image/jpeg"
        }
        _ => {
            image.write_with_encoder(PngEncoder::new(&mut bytes))?;
            "image/png"
        }
    };
    Ok(Thumbnail::Generated { bytes: bytes.into_inner(), content_type, width: image.width(), height: image.height() })
}

/// The image resized for `size`, never enlarged. Scale fits it within the size, keeping its
/// aspect ratio. Crop scales it to cover the size and cuts out the middle, giving exactly the
/// size; an image too small to cover it is not enlarged but cut to what overlaps.
pub fn resize(image: &DynamicImage, size: ThumbnailSize) -> DynamicImage {
    let (width, height) = (f64::from(image.width().max(1)), f64::from(image.height().max(1)));
    let (target_width, target_height) = (f64::from(size.width), f64::from(size.height));
    let scaled = |factor: f64| ((width * factor).round().max(1.0) as u32, (height * factor).round().max(1.0) as u32);
    match size.method {
        ResizeMethod::Scale => {
            let factor = (target_width / width).min(target_height / height);
            if factor >= 1.0 {
                return image.clone();
            }
            let (w, h) = scaled(factor);
            image.thumbnail_exact(w, h)
        }
        ResizeMethod::Crop => {
            let factor = (target_width / width).max(target_height / height);
            let covering = if factor >= 1.0 {
                image.clone()
            } else {
                let (w, h) = scaled(factor);
                image.thumbnail_exact(w.max(size.width), h.max(size.height))
            };
            let (w, h) = (covering.width().min(size.width), covering.height().min(size.height));
            covering.crop_imm((covering.width() - w) / 2, (covering.height() - h) / 2, w, h)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

    use super::*;

    fn encoded(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        encoded_image(DynamicImage::ImageRgb8(image), format)
    }

    fn encoded_image(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn animated_gif(width: u32, height: u32, frames: u8) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = GifEncoder::new_with_speed(&mut out, 30);
            encoder.set_repeat(Repeat::Infinite).unwrap();
            let frames = (0..frames).map(|i| {
                Frame::from_parts(RgbaImage::from_pixel(width, height, image::Rgba([i * 40, 0, 0, 255])), 0, 0, image::Delay::from_numer_denom_ms(100, 1))
            });
            encoder.encode_frames(frames).unwrap();
        }
        out
    }

    fn generated(thumbnail: Thumbnail) -> (Vec<u8>, &'static str, u32, u32) {
        match thumbnail {
            Thumbnail::Generated { bytes, content_type, width, height } => (bytes, content_type, width, height),
            Thumbnail::Original => panic!("expected a generated thumbnail"),
        }
    }

    #[test]
    fn requests_map_onto_the_configured_sizes() {
        let size = |w, h, m| {
            let s = choose_size(w, h, m);
            (s.width, s.height, s.method)
        };
        use ResizeMethod::{Crop, Scale};
        assert_eq!(size(32, 32, Crop), (32, 32, Crop));
        assert_eq!(size(10, 20, Crop), (32, 32, Crop));
        assert_eq!(size(33, 33, Crop), (96, 96, Crop));
        assert_eq!(size(100, 100, Crop), (320, 240, Scale), "no crop is big enough: the smallest scale that is");
        assert_eq!(size(320, 240, Scale), (320, 240, Scale));
        assert_eq!(size(321, 200, Scale), (640, 480, Scale));
        assert_eq!(size(50, 50, Scale), (320, 240, Scale));
        assert_eq!(size(800, 600, Scale), (800, 600, Scale));
        assert_eq!(size(4000, 4000, Scale), (800, 600, Scale), "bigger than any: the largest");
        assert_eq!(size(4000, 4000, Crop), (800, 600, Scale));
    }

    #[test]
    fn scale_keeps_the_aspect_ratio_and_crop_gives_the_exact_size() {
        let source = encoded(1000, 500, ImageFormat::Png);
        let scale = ThumbnailSize { width: 320, height: 240, method: ResizeMethod::Scale };
        let (bytes, content_type, width, height) = generated(make_thumbnail(Cursor::new(&source), scale, false, u64::MAX).unwrap());
        assert_eq!((content_type, width, height), ("image/png", 320, 160));
        assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 320);

        let crop = ThumbnailSize { width: 96, height: 96, method: ResizeMethod::Crop };
        let (_, _, width, height) = generated(make_thumbnail(Cursor::new(&source), crop, false, u64::MAX).unwrap());
        assert_eq!((width, height), (96, 96));

        let jpeg = encoded(1000, 500, ImageFormat::Jpeg);
        let (bytes, content_type, ..) = generated(make_thumbnail(Cursor::new(&jpeg), crop, false, u64::MAX).unwrap());
        assert_eq!(content_type, "image/jpeg");
        assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Jpeg);
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 1000x500 JPEG whose EXIF says "rotate 90°": shown as 500x1000.
        let exif = [
            b'I', b'I', 42, 0, 8, 0, 0, 0, // TIFF header, little-endian, first IFD at 8
            1, 0, // one entry
            0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, // Orientation (SHORT) = 6
            0, 0, 0, 0, // no next IFD
        ];
        let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(1000, 500, image::Rgb([200, 10, 10])));
        let mut jpeg = Cursor::new(Vec::new());
        let mut encoder = JpegEncoder::new(&mut jpeg);
        image::ImageEncoder::set_exif_metadata(&mut encoder, exif.to_vec()).unwrap();
        image.write_with_encoder(encoder).unwrap();
        let scale = ThumbnailSize { width: 320, height: 240, method: ResizeMethod::Scale };
        let (_, _, width, height) = generated(make_thumbnail(Cursor::new(jpeg.into_inner()), scale, false, u64::MAX).unwrap());
        assert_eq!((width, height), (120, 240));
    }

    #[test]
    fn never_enlarges() {
        let small = encoded(20, 10, ImageFormat::Jpeg);
        let scale = ThumbnailSize { width: 320, height: 240, method: ResizeMethod::Scale };
        assert!(matches!(make_thumbnail(Cursor::new(&small), scale, false, u64::MAX).unwrap(), Thumbnail::Original));
        // Wider than the crop but not as tall: cut, not enlarged.
        let wide = encoded(50, 20, ImageFormat::Png);
        let crop = ThumbnailSize { width: 32, height: 32, method: ResizeMethod::Crop };
        let (_, _, width, height) = generated(make_thumbnail(Cursor::new(&wide), crop, false, u64::MAX).unwrap());
        assert_eq!((width, height), (32, 20));
    }

    #[test]
    fn animations_keep_their_frames_only_when_asked() {
        let gif = animated_gif(400, 400, 3);
        let size = ThumbnailSize { width: 96, height: 96, method: ResizeMethod::Crop };
        let (bytes, content_type, ..) = generated(make_thumbnail(Cursor::new(&gif), size, true, u64::MAX).unwrap());
        assert_eq!(content_type, "image/gif");
        let frames = GifDecoder::new(Cursor::new(&bytes)).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].buffer().dimensions(), (96, 96));

        let (_, content_type, ..) = generated(make_thumbnail(Cursor::new(&gif), size, false, u64::MAX).unwrap());
        assert_eq!(content_type, "image/png", "a still thumbnail of the first frame");

        // More frames than the pixel budget allows: a still image rather than a bomb.
        let (_, content_type, ..) = generated(make_thumbnail(Cursor::new(&gif), size, true, 400 * 400 * 2).unwrap());
        assert_eq!(content_type, "image/png");
    }

    /// An animated WebP of `colours.len()` frames, put together from the lossless still frames
    /// the image crate encodes (it cannot encode animations): VP8X with the animation flag,
    /// ANIM, then one ANMF chunk around each frame's VP8L chunk.
    fn animated_webp(width: u32, height: u32, colours: &[[u8; 3]]) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(kind);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(0);
            }
        }
        let u24 = |value: u32| value.to_le_bytes()[..3].to_vec();
        let mut body = b"WEBP".to_vec();
        chunk(&mut body, b"VP8X", &[&[0x02, 0, 0, 0][..], &u24(width - 1), &u24(height - 1)].concat());
        chunk(&mut body, b"ANIM", &[255, 255, 255, 255, 0, 0]);
        for colour in colours {
            let still = encoded_image(DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, image::Rgb(*colour))), ImageFormat::WebP);
            assert_eq!(&still[12..16], b"VP8L", "a simple lossless WebP");
            let frame = [&[0u8; 6][..], &u24(width - 1), &u24(height - 1), &u24(100), &[0], &still[12..]].concat();
            chunk(&mut body, b"ANMF", &frame);
        }
        [&b"RIFF"[..], &(body.len() as u32).to_le_bytes(), &body].concat()
    }

    #[test]
    fn animated_webp_becomes_an_animated_gif() {
        let webp = animated_webp(300, 200, &[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]]);
        let size = ThumbnailSize { width: 32, height: 32, method: ResizeMethod::Crop };
        let (bytes, content_type, ..) = generated(make_thumbnail(Cursor::new(&webp), size, true, u64::MAX).unwrap());
        assert_eq!(content_type, "image/gif");
        let frames = GifDecoder::new(Cursor::new(&bytes)).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 4);
        let [red, green, blue, _] = frames[2].buffer().get_pixel(16, 16).0;
        assert!(red < 20 && green < 20 && blue > 235, "the third frame is blue: {:?}", (red, green, blue));
        let (_, content_type, width, height) = generated(make_thumbnail(Cursor::new(&webp), size, false, u64::MAX).unwrap());
        assert_eq!((content_type, width, height), ("image/png", 32, 32));
    }

    #[test]
    fn declared_dimensions_over_the_limit_are_refused_before_decoding() {
        let png = encoded(300, 200, ImageFormat::Png);
        let size = ThumbnailSize { width: 32, height: 32, method: ResizeMethod::Crop };
        let error = make_thumbnail(Cursor::new(&png), size, false, 300 * 200 - 1).unwrap_err();
        assert!(matches!(error, ThumbnailError::TooLarge { width: 300, height: 200, .. }), "{error}");
    }

    #[test]
    fn other_content_is_unsupported() {
        let size = ThumbnailSize { width: 32, height: 32, method: ResizeMethod::Crop };
        for content in [&b"just some text"[..], b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", b"\x89PNG\r\n\x1a\ncorrupt"] {
            let error = make_thumbnail(Cursor::new(content), size, false, u64::MAX).unwrap_err();
            assert!(matches!(error, ThumbnailError::Unsupported(_)), "{error}");
        }
    }
}
