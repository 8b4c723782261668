"""The bundled Streamlit app (``streamlit_app.py``), started by ``digitctl serve``.

Nothing here is imported by the CLI: the app runs in its own Streamlit process.
"""
