//! Kinds of interaction events.

use serde::{Deserialize, Serialize};

/// What a user did with an item. Custom kinds carry an index into the dataset's custom names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    Click,
    AddToCart,
    Purchase,
    Rating,
    Custom(u16),
}

impl EventType {
    /// Parses a built-in event name (case-insensitive, `-` or `_` accepted); `None` for custom names.
    pub fn builtin(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase().replace('-', "_");
        Some(match lower.as_str() {
            "view" | "views" | "impression_click" => EventType::View,
            "click" | "clicks" => EventType::Click,
            "add_to_cart" | "addtocart" | "cart" => EventType::AddToCart,
            "purchase" | "buy" | "transaction" | "order" => EventType::Purchase,
            "rating" | "rate" => EventType::Rating,
            _ => return None,
        })
    }

    /// Name of a built-in event; custom events are named by the dataset.
    pub fn builtin_name(self) -> Option<&'static str> {
        Some(match self {
            EventType::View => "view",
            EventType::Click => "click",
            EventType::AddToCart => "add_to_cart",
            EventType::Purchase => "purchase",
            EventType::Rating => "rating",
            EventType::Custom(_) => return None,
        })
    }
}
