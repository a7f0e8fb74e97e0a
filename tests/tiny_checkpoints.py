"""Tiny, randomly initialised checkpoints saved the way the hub ships them (a Whisper whose tokenizer
has timestamp tokens; SeamlessM4T-v2 speech-to-text; a CTC model with MMS-style language adapters),
so that those code paths run offline."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

ARABIC = list("ابتثجحخدذرسشصضطظعغفقكلمنهوية")
SEAMLESS_LANGUAGES = ("__arb__", "__eng__")


def timestamp_whisper_checkpoint(directory: Path, window_s: int = 6) -> Path:
    """A one-layer Whisper with kdlib's small-teacher tokenizer plus Whisper's timestamp tokens
    (`<|0.00|>` … every 0.02 s of the window, right after `<|notimestamps|>`, as in OpenAI's vocabulary)."""
    from kdlib.config import TeacherArchitecture
    from kdlib.models.whisper import build_processor, new_model

    settings = TeacherArchitecture(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        attention_heads=2,
        ffn_dim=64,
        vocab_size=120,
        chunk_length_s=window_s,
        hop_length=320,
        max_target_positions=64,
    )
    processor = build_processor(["السلام عليكم ورحمة الله", "مع السلامة يا صديقي", "كيف حالك"] * 20, settings, 16_000)
    processor.tokenizer.add_tokens([f"<|{step * 0.02:.2f}|>" for step in range(window_s * 50 + 1)])
    model = new_model(processor, settings)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def seamless_checkpoint(directory: Path) -> Path:
    """A two-language SeamlessM4T-v2 speech-to-text model with a character vocabulary."""
    from transformers import (
        GenerationConfig,
        SeamlessM4TFeatureExtractor,
        SeamlessM4TProcessor,
        SeamlessM4TTokenizer,
        SeamlessM4Tv2Config,
        SeamlessM4Tv2ForSpeechToText,
    )

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    for token in ["▁", *ARABIC, *(f"▁{c}" for c in ARABIC), *SEAMLESS_LANGUAGES]:
        vocab[token] = len(vocab)
    tokenizer = SeamlessM4TTokenizer(
        vocab=vocab, merges=[], additional_special_tokens=list(SEAMLESS_LANGUAGES), src_lang="arb", tgt_lang="arb"
    )
    SeamlessM4TProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer).save_pretrained(
        directory
    )
    small = dict(
        hidden_size=32,
        speech_encoder_layers=1,
        speech_encoder_attention_heads=2,
        speech_encoder_intermediate_size=64,
        text_encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        t2u_encoder_layers=1,
        t2u_decoder_layers=1,
        t2u_encoder_attention_heads=2,
        t2u_decoder_attention_heads=2,
        t2u_encoder_ffn_dim=16,
        t2u_decoder_ffn_dim=16,
        t2u_vocab_size=8,
        t2u_max_position_embeddings=64,
        char_vocab_size=16,
        unit_hifi_gan_vocab_size=8,
        spkr_embed_dim=8,
        lang_embed_dim=8,
        unit_embed_dim=8,
        vocoder_num_langs=2,
        vocoder_num_spkrs=2,
        upsample_initial_channel=8,
    )
    config = SeamlessM4Tv2Config(
        vocab_size=len(vocab), pad_token_id=0, bos_token_id=2, eos_token_id=3, decoder_start_token_id=3, **small
    )
    torch.manual_seed(0)
    model = SeamlessM4Tv2ForSpeechToText(config)
    model.generation_config = GenerationConfig(
        text_decoder_lang_to_code_id={code.strip("_"): vocab[code] for code in SEAMLESS_LANGUAGES},
        decoder_start_token_id=3,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    model.save_pretrained(directory)
    return directory


def ctc_checkpoint(directory: Path, adapters: bool = True) -> Path:
    """A wav2vec2 CTC model with adapters for `eng` (in the base weights) and `ara`
    (`adapter.ara.safetensors`, its own vocabulary size), laid out like facebook/mms-1b-all;
    without `adapters`, a plain Arabic CTC fine-tune (one flat vocabulary)."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    def vocabulary(characters: list[str]) -> dict[str, int]:
        vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
        vocab.update({c: 5 + i for i, c in enumerate(characters)})
        return vocab

    vocabularies = {"eng": vocabulary(list("abcdefgh")), "ara": vocabulary(ARABIC)}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(
        json.dumps(vocabularies if adapters else vocabularies["ara"], ensure_ascii=False)
    )
    target = {"target_lang": "eng"} if adapters else {}
    tokenizer = Wav2Vec2CTCTokenizer(str(directory / "vocab.json"), word_delimiter_token="|", **target)
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(directory)
    config = Wav2Vec2Config(
        vocab_size=len(vocabularies["eng" if adapters else "ara"]),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        adapter_attn_dim=8 if adapters else None,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(config)
    model.save_pretrained(directory)
    if not adapters:
        return directory
    arabic = {
        key: torch.randn(len(vocabularies["ara"]), *value.shape[1:])
        if key.startswith("lm_head")
        else value + 0.1 * torch.randn_like(value)
        for key, value in model._get_adapters().items()
    }
    save_file({key: value.contiguous() for key, value in arabic.items()}, str(directory / "adapter.ara.safetensors"))
    return directory
