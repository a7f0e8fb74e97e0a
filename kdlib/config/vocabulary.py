"""Whisper's multilingual vocabulary layout (openai-whisper's `get_encoding`): the facts params are checked
against and `kdlib.models.tokenizer` builds the tokenizer from."""

# Whisper's language codes in its token order (openai-whisper's `LANGUAGES`): large-v2 has the first 99
LANGUAGES = (
    *("en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi"),
    *("fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la"),
    *("mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy"),
    *("ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be"),
    *("tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl"),
    *("mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"),
)
LARGE_V2_LANGUAGES = 99
TRAINED_TEACHER_LANGUAGES = ("en", "ar", "fr", "es", "de", "tr", "fa", "ur", "he", "sw")  # a teacher trained here
TASKS = ("translate", "transcribe")
TIMESTAMPS = tuple(f"<|{i * 0.02:.2f}|>" for i in range(1501))  # 0.00 … 30.00 s in steps of 20 ms
TEXT_TOKENS = 50257  # the ranks of multilingual.tiktoken
VOCAB_SIZE = TEXT_TOKENS + 2 + LARGE_V2_LANGUAGES + len(TASKS) + 4 + len(TIMESTAMPS)  # 51,865: large-v2's
