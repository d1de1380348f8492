"""The publish stage: a trained policy in the Hugging Face layout, with its model card."""
