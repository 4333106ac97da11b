//! Whether a browser screenshot shows something: the share of inked pixels and the colours.

use std::path::Path;

/// Fraction of non-white pixels (any channel below 200) and number of distinct colours of a
/// PNG screenshot. Panics when the file is missing or not a PNG: tests only.
pub fn screenshot_ink(shot: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(shot).expect("screenshot written"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|&c| c < 200))
        .count();
    let mut colours: Vec<[u8; 3]> = pixels.iter().map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    (inked as f64 / pixels.len() as f64, colours.len())
}
